"""An optional extra that is missing is named with its install command; one that is there is simply imported."""
from __future__ import annotations

import json

import pytest

from emoclf.utils.extras import require_extra


def test_an_installed_module_is_returned():
    assert require_extra("json", "tune", "Reading JSON") is json


@pytest.mark.parametrize("error", [ValueError, ImportError])
def test_a_missing_extra_names_what_needs_it_and_the_install_command(error):
    with pytest.raises(error) as info:
        require_extra("emoclf_no_such_module.part", "tune", "emoclf tune", error, packages="optuna")
    text = str(info.value)
    assert text.startswith("emoclf tune needs emoclf_no_such_module (")
    assert text.endswith("Install it with: pip install 'emoclf[tune]' (optuna).")
