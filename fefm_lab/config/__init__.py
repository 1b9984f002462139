"""Configuration: the schemas (defaults, types, ranges, docs), validation and composition.

`schema` holds one dataclass per config section and per model, `dataset` and `trainer` the
checked objects the data path and the trainer read; `validation` checks a resolved config against
them with messages that name the key; `registry` puts the schemas in Hydra's ConfigStore;
`compose` turns command-line overrides into configs with Hydra; `ablation` states what each
ablation means, `debug` the model sizes of the debug presets. Importing this package loads
neither Hydra nor TensorFlow (the submodules that need Hydra import it themselves).
"""
