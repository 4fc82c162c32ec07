"""One config base: every configuration dataclass reads a partial dict and writes a dict the
same way (sections over their defaults, unknown keys named, JSON-ready output)."""
import dataclasses
import importlib
import json
import pkgutil

import pytest

import tem_lib
from tem_lib.config import Config
from tem_lib.ldm import LDMConfig


def test_sections_are_read_over_their_defaults_and_unknown_keys_are_named():
    c = LDMConfig.from_dict({"denoiser_training": {"steps": 5}, "autoencoder": {"block_out_channels": [8, 16]}})
    assert c.denoiser_training.steps == 5 and c.denoiser_training.lr == LDMConfig().denoiser_training.lr
    assert c.autoencoder_training == LDMConfig().autoencoder_training  # a section not named keeps its default
    assert c.autoencoder.block_out_channels == (8, 16)  # lists become tuples
    with pytest.raises(ValueError, match="LDM config section 'denoiser': unknown keys \\['colour'\\]"):
        LDMConfig.from_dict({"denoiser": {"colour": 1}})
    with pytest.raises(ValueError, match="LDM config: unknown keys \\['decoder'\\]"):
        LDMConfig.from_dict({"decoder": {}})
    d = c.to_dict()
    assert d == json.loads(json.dumps(d)) and d["autoencoder"]["block_out_channels"] == [8, 16]
    assert LDMConfig.from_dict(d) == c  # the round trip through a file


def test_every_configuration_dataclass_shares_the_base():
    """A ``...Config`` dataclass of tem_lib that does not derive from Config would read and
    write dicts its own way again."""
    strays = []
    for mod in pkgutil.walk_packages(tem_lib.__path__, "tem_lib."):
        if mod.name.endswith(("__main__", ".widget")):
            continue
        m = importlib.import_module(mod.name)
        for name, obj in vars(m).items():
            if (name.endswith("Config") and isinstance(obj, type) and dataclasses.is_dataclass(obj)
                    and obj.__module__ == m.__name__ and not issubclass(obj, Config)):
                strays.append(f"{m.__name__}.{name}")
    assert not strays, strays
