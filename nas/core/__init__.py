"""The vocabulary every room shares: the search's configuration (:mod:`.config`), the
user-facing error (:mod:`.errors`), credentials kept out of every record
(:mod:`.credentials`), budgets (:mod:`.budget`), progress bars (:mod:`.progress`), the
driver's environment for Ray and MLflow (:mod:`.driver_env`) and the architecture summary
(:mod:`.arch_summary`). It imports no other room of ``nas``."""
