"""Templates and pathways a deployment is generated from, installed as ``maillon_config``.

The folder stays ``config/`` in the repository; ``pyproject.toml`` maps it to the package
``maillon_config`` so a regular (non-editable) install ships it as package data. Read it with
``importlib.resources.files("maillon_config")``, never through a path relative to the code.
"""
