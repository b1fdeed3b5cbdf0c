"""Issue 19, item 4: each failure names the file, the field and what was expected."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hostilefiles import png, safetensors
from sfumato.canvas.files.file_errors import MalformedXmlError
from sfumato.canvas.files.ora import load_ora
from sfumato.inference.errors import CorruptModelError, UnsafeModelError
from sfumato.inference.model_files import check_model_folder


def text_encoder_folder(tmp_path: Path, config: dict[str, object], layers: int = 2) -> Path:
    folder = tmp_path / "model"
    (folder / "text_encoder").mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    (folder / "text_encoder" / "config.json").write_text(json.dumps(config))
    header = {f"text_model.encoder.layers.{i}.mlp.fc1.weight": {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]}
              for i in range(layers)}
    header["text_model.embeddings.token_embedding.weight"] = {"dtype": "F32", "shape": [1, 1], "data_offsets": [4 * layers, 4 * layers + 4]}
    (folder / "text_encoder" / "model.safetensors").write_bytes(safetensors(header, bytes(4 * layers + 4)))
    return folder


def test_a_config_field_of_the_wrong_type_is_named(tmp_path: Path) -> None:
    folder = text_encoder_folder(tmp_path, {"hidden_size": {"a": 1}})
    with pytest.raises(CorruptModelError, match=r"text_encoder/config.json: hidden_size is \{\"a\": 1\}; expected a whole number"):
        check_model_folder(folder)


def test_a_config_declaring_a_million_layers_is_refused_against_the_weights(tmp_path: Path) -> None:
    folder = text_encoder_folder(tmp_path, {"num_hidden_layers": 1_000_000, "hidden_size": 1})
    with pytest.raises(CorruptModelError, match="num_hidden_layers is 1000000, but the weights file holds 2 layers"):
        check_model_folder(folder)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("layers_per_block", 3, r"layers_per_block \(block 0\) is 3, but the weights file holds 2 layers there"),
        ("transformer_layers_per_block", [1, 4], r"transformer_layers_per_block \(block 1\) is 4, but the weights file holds 1 there"),
    ],
)
def test_per_block_layer_counts_are_checked_against_the_weights(tmp_path: Path, field: str, value: object, words: str) -> None:
    folder = tmp_path / "model"
    (folder / "unet").mkdir(parents=True)
    config = {"block_out_channels": [32, 64], "layers_per_block": 2, "transformer_layers_per_block": 1}
    names = [f"down_blocks.{b}.resnets.{r}.conv1.weight" for b in range(2) for r in range(2)]
    names += [f"down_blocks.{b}.attentions.0.transformer_blocks.0.attn1.to_q.weight" for b in range(2)]
    header = {name: {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]} for i, name in enumerate(names)}
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(safetensors(header, bytes(4 * len(names))))
    (folder / "unet" / "config.json").write_text(json.dumps(config))
    check_model_folder(folder)  # the counts the weights hold pass
    (folder / "unet" / "config.json").write_text(json.dumps({**config, field: value}))
    with pytest.raises(CorruptModelError, match=words):
        check_model_folder(folder)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are a Unix thing")
def test_a_named_pipe_inside_a_model_folder_is_refused(tmp_path: Path) -> None:
    folder = text_encoder_folder(tmp_path, {"hidden_size": 1})
    os.mkfifo(folder / "text_encoder" / "tokenizer.json")
    with pytest.raises(CorruptModelError, match="not a regular file"):
        check_model_folder(folder)


def test_empty_and_random_ckpt_files_say_what_they_are(tmp_path: Path) -> None:
    from sfumato.inference.single_file import load_checkpoint_state_dict

    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    with pytest.raises(CorruptModelError, match=r"empty.ckpt is empty \(0 bytes\)"):
        load_checkpoint_state_dict(empty)
    noise = tmp_path / "noise.ckpt"
    noise.write_bytes(bytes((i * 97 + 13) % 256 for i in range(4096)))
    with pytest.raises(CorruptModelError, match="not a PyTorch checkpoint") as info:
        load_checkpoint_state_dict(noise)
    assert not isinstance(info.value, UnsafeModelError)


def test_a_protocol_0_pickle_that_imports_code_is_called_unsafe(tmp_path: Path) -> None:
    from sfumato.inference.single_file import load_checkpoint_state_dict

    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(b"cos\nsystem\n(S'echo hi'\ntR.")
    with pytest.raises(UnsafeModelError, match="imports os.system"):
        load_checkpoint_state_dict(evil)


def test_a_bad_offset_names_the_unnamed_layer(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "off.ora"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mimetype", "image/openraster")
        zf.writestr("stack.xml", "<image w='8' h='8'><stack><layer src='data/a.png' x='nan'/></stack></image>")
        zf.writestr("data/a.png", png(2, 2))
    with pytest.raises(MalformedXmlError, match="layer 'Layer 1'") as error:
        load_ora(path)
    assert "None" not in str(error.value)
