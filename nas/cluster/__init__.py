"""Ray clusters and shared folders: starting or joining Ray, checking that every node reaches
the checkpoint location (:mod:`.ray_cluster`), and the lock that keeps one driver per search
(:mod:`.search_lock`). It imports only :mod:`nas.core`."""
