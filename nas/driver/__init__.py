"""Planning and running a search in the driver process: checks before Ray starts
(:mod:`.prepare`), the fidelity plan (:mod:`.plan`, timed on the workers by
:mod:`.plan_on_workers`), the define-by-run function handed to Optuna (:mod:`.define_by_run`),
the sampler's bounded history (:mod:`.history_window`), local search around the best trials
(:mod:`.local_search`), warm starts (:mod:`.warm_start`), the best trials evaluated again
before the hand-over (:mod:`.repeat_best`),
Ray Tune's searcher, callback and stopper (:mod:`.searcher`, :mod:`.ray_adapters`), the
budget's durable accounting (:mod:`.ledger`), the live status line (:mod:`.live_view`) and
the one function that runs it all (:mod:`.search_run`). A newcomer starts reading at
:func:`.search_run.run_search`."""
