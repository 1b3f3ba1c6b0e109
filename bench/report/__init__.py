"""The HTML report of a run: ``t2ibench report RUN`` → ``RUN/results/report.html``.

``t2ibench.report.html.write_report(run, out=None, analysis_dirs=(), max_prompts=6,
max_images=2) -> Path``; the page is self-contained (images inlined as base64 PNG).
``benchmarks/screenshot_report.sh RUN`` renders it in headless Chromium and saves a screenshot.
"""
