"""Everything MLflow: the tracker that mirrors a search's events as nested runs
(:mod:`.tracker`), the store it opens (:mod:`.store`), the trials view (:mod:`.view`), the
summary and plots of a search run (:mod:`.run_summary`, :mod:`.plots`), the spool that keeps
writes while the server is away (:mod:`.spool`) and the model registry
(:mod:`.model_registry`). It imports :mod:`nas.study` and :mod:`nas.core`."""
