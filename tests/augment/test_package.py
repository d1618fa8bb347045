"""dsc/augment/ is a package behind the verb ``dsc.augment``: importing its modules keeps the verb, and the
names its stores and callers use resolve."""

from __future__ import annotations

import importlib
import sys


def test_the_verb_stays_callable_and_reaches_the_package():
    import dsc
    import dsc.augment.run
    import dsc.augment.shards

    package = sys.modules["dsc.augment"]
    assert callable(dsc.augment) and repr(dsc.augment) == "<dsc verb augment>"
    assert dsc.augment.run_augment is dsc.augment.run.run_augment is package.run_augment
    assert dsc.augment.shards.save_shard is sys.modules["dsc.augment.shards"].save_shard
    assert dsc.AugmentResult is package.AugmentResult


def test_the_recorded_seed_function_is_the_one_that_made_the_seeds():
    from dsc.augment.plan import SEED_FUNCTION, image_seed

    module, name = SEED_FUNCTION.rsplit(".", 1)  # the store's seed_derivation.function
    assert getattr(importlib.import_module(module), name) is image_seed
