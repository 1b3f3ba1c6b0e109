"""Built-in prompt-set loaders: name → ``module:function`` (imported only when used)."""

CATALOG = {
    "coco2014": "t2ibench.datasets.coco2014:load_captions",
    "attributes": "t2ibench.datasets.attributes:load_attribute_prompts",
    "file": "t2ibench.datasets.files:load_prompt_file",
    "prompts": "t2ibench.datasets.files:inline_prompts",
    "tinyworld-alignment": "t2ibench.datasets.tinyworld:load_alignment",
    "am-categories": "t2ibench.datasets.am_categories:load_am_categories",
    "tinyworld-fairness": "t2ibench.datasets.tinyworld:load_fairness",
}
