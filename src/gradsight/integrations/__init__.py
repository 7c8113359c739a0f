"""gradsight in other frameworks' training loops: ``gradsight.integrations.lightning``.

Each module imports its framework, an optional extra (``pip install 'gradsight[lightning]'``);
importing one without it says which package to install.
"""
