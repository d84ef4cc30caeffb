"""Adapting a pretrained model: initial weights, adapters (LoRA, freezing), merged export."""
