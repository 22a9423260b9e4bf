"""``slimseg-demo``: the whole system in one command (:mod:`.cli`), written up as a report folder."""
