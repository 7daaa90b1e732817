"""Typed experiment configuration: defaults < YAML file < ``--set section.key=value``.

fields: the dataclasses, every key's doc and allowed values written once; checks: values checked by those rules
(model files' preprocessing and class names too); loading: read, merge, validate, save; reference: the text of
configs/default.yaml. Everything is imported from here (``from emoclf.config import load_config``).
"""
from emoclf.config.checks import MAX_CLASS_NAME, MAX_CLASSES, PREPROCESSING_KEYS, check_class_names, check_preprocessing
from emoclf.config.fields import (
                                  CLASS_NAME_MODES,
                                  LOGGERS,
                                  MAX_TEXT_VALUE,
                                  SECTIONS,
                                  TENCROP_FRACTION,
                                  TTA_MODES,
                                  AugmentConfig,
                                  Config,
                                  DataConfig,
                                  ModelConfig,
                                  OutputConfig,
                                  TrainConfig,
                                  allowed,
                                  crop_offsets,
                                  preprocessing_crop,
                                  rules,
                                  setting,
)
from emoclf.config.loading import from_dict, load_config, merge, parse_override, save_config, to_dict
from emoclf.config.reference import default_yaml

__all__ = ["AugmentConfig", "CLASS_NAME_MODES", "Config", "DataConfig", "LOGGERS", "MAX_CLASSES", "MAX_CLASS_NAME",
           "MAX_TEXT_VALUE", "ModelConfig", "OutputConfig", "PREPROCESSING_KEYS", "SECTIONS", "TENCROP_FRACTION",
           "TTA_MODES", "TrainConfig", "allowed", "check_class_names", "check_preprocessing", "crop_offsets",
           "default_yaml", "from_dict", "load_config", "merge", "parse_override", "preprocessing_crop", "rules",
           "save_config", "setting", "to_dict"]
