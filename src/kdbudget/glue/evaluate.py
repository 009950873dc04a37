"""Predictions on an evaluation set: batches sorted by length, under `torch.inference_mode`."""

from __future__ import annotations

import numpy as np
import torch
from transformers import PreTrainedModel

from kdbudget.glue.encode import Encoded


@torch.inference_mode()
def predict(model: PreTrainedModel, data: Encoded, batch_size: int, device: torch.device, autocast) -> np.ndarray:
    """Class indices (or scores for one output) in the order of ``data``."""
    model.eval()
    order = np.argsort(-data.lengths, kind="stable")  # similar lengths together: little padding
    outputs = []
    for start in range(0, len(order), batch_size):
        batch = data.batch(order[start:start + batch_size], device)
        with autocast():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           token_type_ids=batch["token_type_ids"]).logits.float()
        outputs.append(logits.squeeze(-1) if model.config.num_labels == 1 else logits.argmax(-1))
    predictions = torch.cat(outputs).cpu().numpy()
    result = np.empty_like(predictions)
    result[order] = predictions
    return result
