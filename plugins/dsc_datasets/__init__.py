"""dsc's built-in dataset plugins: ``folder`` (image folders), ``mvip`` (MVIP layout), ``toyparts`` (demo).

Registered through the ``dsc.datasets`` entry points in dsc's ``pyproject.toml``, exactly like a
third-party plugin. Modules here import only numpy/PIL (and those lazily where it matters), never torch.
"""
