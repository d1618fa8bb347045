"""Multi-process tests launch `dsc` under torchrun (what `accelerate launch --multi_gpu` runs) with 2 CPU
processes (gloo), one thread each (the test machine has 2 cores). The helpers live in ``dsc.testing``
(``dsc_cmd``, ``run_cmd``); the tiny model and ``one_thread`` are fixtures of tests/conftest.py."""
