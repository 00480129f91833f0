# chatbridge: `make run` tries it locally, `make test` runs the tests (what CI runs).
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
WA_ID ?= 573001234567
TEXT ?= hola
# whatsapp (Meta's Cloud API) or twilio: the provider `make say` writes through.
PROVIDER ?= whatsapp

# The embedded run: DEBUG defaults (SQLite, local-memory cache, in-memory channel layer) and the
# fake vendors that `manage.py runlocal` starts on these ports.
LOCAL_ENV := DEBUG=1 LOG_FORMAT=plain \
	WHATSAPP_API_URL=http://127.0.0.1:8082/v23.0 \
	TWILIO_API_URL=http://127.0.0.1:8083 \
	ASSISTANT_URL=http://127.0.0.1:8081 \
	ASSISTANT_AUTH_TYPE=noauth \
	WHATSAPP_TOKEN_DEMO_CARDS=demo-cards-token WHATSAPP_SECRET_DEMO_CARDS=demo-cards-secret

# The console's browser test drives Debian's Chromium (Playwright's own browser download is
# not reachable from these machines).
CHROMIUM ?= /usr/bin/chromium
# Debian's nginx for the tests of deploy/ (tests/test_nginx.py), unpacked into var/ rather than
# installed: an installed nginx starts a server on port 80 of every interface.
NGINX := var/nginx/usr/sbin/nginx

.PHONY: run say test lint format messages clean reliability audit bench bench-queues bench-reports

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

run: $(VENV)/.installed
	$(LOCAL_ENV) $(PY) manage.py runlocal

# TEXT reaches `say` through the environment, never through the shell: any text works, quotes
# and newlines included.
say: export SAY_TEXT = $(TEXT)
say: $(VENV)/.installed
	$(LOCAL_ENV) $(PY) manage.py say --provider $(PROVIDER) "$(WA_ID)" "$$SAY_TEXT" $(if $(FILE),--file "$(FILE)") $(if $(NUMBER),--number "$(NUMBER)")

test: $(VENV)/.installed $(CHROMIUM) $(NGINX) lint
	$(PY) -m pytest

# The fault suite in its long form, then docs/RELIABILITY.md from what it recorded.
RELIABILITY_TESTS := tests/chatbridge/test_cache.py tests/test_faults.py tests/test_bad_input.py \
	tests/test_load.py tests/test_processes.py tests/test_agents_processes.py \
	tests/test_security.py tests/users/test_login_lockout.py tests/rooms/bot/test_recovery.py \
	tests/rooms/bot/test_turns.py tests/rooms/delivery/test_send_faults.py \
	tests/rooms/delivery/test_send_ownership.py tests/rooms/desk/test_revocation.py \
	tests/test_nginx.py tests/chatbridge/test_worker.py tests/rooms/test_admin.py \
	tests/rooms/inbound/test_webhook.py tests/test_console_browser.py
reliability: $(VENV)/.installed $(CHROMIUM) $(NGINX)
	rm -f var/reliability.json
	RELIABILITY_RECORDS=var/reliability.json RELIABILITY_SAMPLES=200 BURST_CUSTOMERS=200 \
		KILL_BURST_CUSTOMERS=200 KILL_BURST_KILLS=10 \
		SOAK_SECONDS=180 HYPOTHESIS_EXAMPLES=1000 \
		$(PY) -m pytest -q -p no:randomly --junitxml=var/reliability.xml $(RELIABILITY_TESTS) || true
	-$(MAKE) --no-print-directory audit > var/audit.txt 2>&1
	$(PY) bench/reliability.py var/reliability.json var/reliability.xml var/audit.txt \
		> docs/RELIABILITY.md
	@echo "wrote docs/RELIABILITY.md"

# The benchmark against baselines of the same run (wrk from Debian), into docs/BENCHMARKS.md.
$(VENV)/.bench-installed: $(VENV)/.installed requirements-bench.txt
	$(VENV)/bin/pip install --quiet -r requirements-bench.txt
	touch $@

bench: $(VENV)/.bench-installed
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	mkdir -p var
	$(PY) bench/run.py --seconds 10 --repeats 3 --plot docs/benchmark-latency.png \
		--profile docs/benchmark-profile.svg > var/BENCHMARKS.md && mv var/BENCHMARKS.md docs/
	@echo "wrote docs/BENCHMARKS.md, docs/benchmark-latency.png, docs/benchmark-profile.svg"

# The reports page's rows alone (bench/reports.py: about 3 minutes; a database of its own,
# dropped at the end), printed as docs/BENCHMARKS.md's table rows.
bench-reports: $(VENV)/.installed
	$(PY) bench/run.py --only reports

# chatbridge's task queue against Procrastinate's (bench/task_queues.py, about 5 minutes; its own
# database, dropped at the end), into docs/TASK-QUEUE.md.
bench-queues: $(VENV)/.bench-installed
	mkdir -p var
	$(PY) bench/task_queues.py > var/TASK-QUEUE.md && mv var/TASK-QUEUE.md docs/
	@echo "wrote docs/TASK-QUEUE.md"

# Known vulnerabilities in the pinned requirements (needs a reachable vulnerability database).
audit: $(VENV)/.installed
	$(VENV)/bin/pip install --quiet pip-audit==2.10.1
	$(VENV)/bin/pip-audit --strict --requirement requirements.txt --requirement requirements-dev.txt

$(CHROMIUM):
	apt-get update -qq && apt-get install -y -qq chromium

$(NGINX):
	rm -rf var/nginx && mkdir -p var/nginx/debs
	cd var/nginx/debs && (apt-get download -qq nginx 2>/dev/null \
		|| (apt-get update -qq && apt-get download -qq nginx))
	dpkg -x var/nginx/debs/nginx_*.deb var/nginx
	$(NGINX) -v

# Style, the layout's import contracts (pyproject.toml), and types.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The Spanish of the console, its login and the agents' error messages (locale/es/LC_MESSAGES):
# the strings of the code and templates (django) and of agent.js (djangojs), merged into the .po
# files to translate, then compiled. The .mo files are committed (CI may have no gettext), and
# tests/test_translations.py fails on an untranslated string or a .mo behind its .po.
MESSAGES_FLAGS := -l es --no-obsolete --add-location=file \
	--ignore=.venv --ignore=var --ignore=node_modules
messages: $(VENV)/.installed
	$(LOCAL_ENV) $(PY) manage.py makemessages $(MESSAGES_FLAGS)
	$(LOCAL_ENV) $(PY) manage.py makemessages -d djangojs $(MESSAGES_FLAGS)
	$(LOCAL_ENV) $(PY) manage.py compilemessages -l es --ignore=.venv --ignore=var

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .mypy_cache .import_linter_cache
