"""How tem_lib is run, not what it computes: the notebooks headless (:mod:`.runner`, behind
``./run_all.sh``), their parameter profiles (:mod:`.profiles`), the Colab set-up cell
(:mod:`.colab`), Binder's environment files (:mod:`.envfiles`), the sweep on a SLURM cluster
(:mod:`.cluster`) and data-parallel training on several GPUs (:mod:`.parallel`)."""
