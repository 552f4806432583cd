"""The record of a search: the Optuna storage that survives outages (:mod:`.storage`), the
trials read back from it (:mod:`.records`), the one table of trial statuses
(:mod:`.status_table`) and the typed events that change a running search's state
(:mod:`.events`). It imports only :mod:`nas.core`."""
