"""The features configuration imports no model code (the CLI builds it before anything loads)."""

from __future__ import annotations

import subprocess
import sys


def test_config_module_loads_no_torch_or_onnxruntime() -> None:
    code = (
        "import fusionrec.features.config, sys; "
        "assert 'torch' not in sys.modules and 'onnxruntime' not in sys.modules, "
        "sorted(m for m in ('torch', 'onnxruntime', 'transformers') if m in sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_config_classes_are_re_exported_where_they_were() -> None:
    from fusionrec.features import config, extract

    for name in (
        "FeaturesConfig",
        "TextEncoderConfig",
        "ImageEncoderConfig",
        "AudioEncoderConfig",
        "AttributesConfig",
        "RuntimeConfig",
    ):
        assert getattr(extract, name) is getattr(config, name)
