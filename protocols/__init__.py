"""The suite's built-in protocols, registered like any third-party plugin."""

from __future__ import annotations

from vlprompt_protocols.base_to_new import BaseToNew
from vlprompt_protocols.cross_dataset import CrossDataset
from vlprompt_protocols.domain_generalization import DomainGeneralization
from vlprompt_protocols.few_shot import FewShot

from benchmark.hookspecs import hookimpl


@hookimpl
def register_protocols(register) -> None:
    for protocol in (FewShot(), BaseToNew(), CrossDataset(), DomainGeneralization()):
        register(protocol)
