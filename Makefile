# `make demo` and `make test` install what they need into .venv/ on first use
# (tools/setup_env.sh; a second run installs nothing).
PY := .venv/bin/python
# fusion strategies of `make demo` besides the baselines: nofusion,
# tokenfusion, channel, geminifusion, geminifusion-swin, all or none (several:
# FUSION="a b"); DATA=rgbdel: the RGB / depth / event / LiDAR set
# (tokenfusion, geminifusion) with the missing-modality table
# TASK=translation: the image-translation demo (DATA=translation, every
# generator of the comparison unless FUSION says otherwise); TASK=mctf: the
# token-merging demo (a small ViT with MCTF / ToMe, accuracy against GFLOPs)
ifeq ($(TASK),translation)
DATA = translation
FUSION ?= all
endif
FUSION ?= tokenfusion
DATA ?= rgbd
# `make demo-3d`: points only, TokenFusion's reference rule and its soft gate,
# seed 0; SEEDS="0 1 2" MODELS=all: every fusion rule and control, 3 seeds
SEEDS ?= 0
MODELS ?= headline

.PHONY: env demo demo-3d test lint clean-demo

env:
	@bash tools/setup_env.sh

DEMO_COMMAND = tools/run_demo.py --data $(DATA) --fusion $(FUSION)
ifeq ($(TASK),mctf)
DEMO_COMMAND = tools/run_demo_mctf.py
endif

demo: env
	$(PY) $(DEMO_COMMAND)

demo-3d: env
	$(PY) tools/run_demo_3d.py --seeds $(SEEDS) --models $(MODELS)

test: env
	$(PY) -m pytest -n 2 --dist loadfile -q

# style, then the architecture contracts of setup.cfg [importlinter]
lint: env
	$(PY) -m flake8 projects tools tests configs demo
	$(PY) -m isort --check-only --diff projects tools tests demo
	$(PY) -m yapf --diff --recursive projects tools tests demo
	.venv/bin/lint-imports

clean-demo:
	rm -rf work_dirs/demo work_dirs/demo_*
