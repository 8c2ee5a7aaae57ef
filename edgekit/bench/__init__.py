"""``edgekit benchmark``: several models measured side by side (:mod:`.benchmark`), shown as a
table (:mod:`.report`) and a plot (:mod:`.plot`)."""
