"""Built-in methods: name → ``module:Class`` (imported only when used)."""

CATALOG = {
    "sd": "t2ibench.baselines.sd:PlainPipeline",
    "hard-prompt": "t2ibench.baselines.hard_prompt:HardPrompt",
    "structured-diffusion": "t2ibench.baselines.structured_diffusion:StructuredDiffusion",
    "iti-gen": "t2ibench.baselines.iti_gen:ItiGen",
    "fairqueue": "t2ibench.baselines.fairqueue:FairQueue",
    "attention-modulation": "t2ibench.baselines.attention_modulation:AttentionModulation",
}
