"""hf_bertmap: fine-tune a BERT that maps a short phrase to one word (`fishy -> smell`, `very chonky -> size`)."""

from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification
from transformers.pipelines import PIPELINE_REGISTRY

from .configuration_bertmap import BertMapConfig
from .decoding_bertmap import DecodingConfig, PhraseMemory, WordMappingDecoder
from .modeling_bertmap import BertForWordMapping, BertMapPreTrainedModel, WordMappingOutput
from .pipeline_bertmap import WordMappingPipeline

__version__ = "0.1.0"

AutoConfig.register(BertMapConfig.model_type, BertMapConfig)
AutoModel.register(BertMapConfig, BertForWordMapping)
AutoModelForSequenceClassification.register(BertMapConfig, BertForWordMapping)
# `save_pretrained` copies the config/modeling files beside the weights and writes `auto_map`, so the model loads
# with `trust_remote_code=True` where hf_bertmap is not installed.
BertMapConfig.register_for_auto_class()
BertForWordMapping.register_for_auto_class("AutoModel")
# pipeline("word-mapping", model=...) -> [{"word", "score"}, ...] per phrase; its code is saved beside the model too.
PIPELINE_REGISTRY.register_pipeline("word-mapping", pipeline_class=WordMappingPipeline, pt_model=AutoModel, type="text")

__all__ = ["BertMapConfig", "BertForWordMapping", "BertMapPreTrainedModel", "WordMappingOutput", "DecodingConfig",
           "PhraseMemory", "WordMappingDecoder", "WordMapper", "WordMappingPipeline", "__version__"]


def __getattr__(name: str):
    # Inference pulls in the tokenizer stack; load it on first use.
    if name == "WordMapper":
        from .inference import WordMapper

        return WordMapper
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
