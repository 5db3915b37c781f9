"""metacni-tuning: an example metacni plugin (type ``tuning-py``)."""
