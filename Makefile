# The two commands of the README: `make demo` and `make test`.
.PHONY: demo test venv lint services-up services-down bench bench-executor bench-alerts bench-scrape bench-fewshot bench-entities bench-store bench-recipes

venv:
	bash scripts/bootstrap.sh

demo: venv
	.venv/bin/finsent --text-logs demo

test: venv
	bash scripts/test.sh

lint: venv
	.venv/bin/python -m ruff check .
	.venv/bin/python -m ruff format --check .
	.venv/bin/python -m mypy pipeline models connectors alerts

bench: venv
	bash scripts/bench.sh

bench-executor: venv
	.venv/bin/python bench/executor_throughput.py

bench-alerts: venv
	.venv/bin/python bench/alert_quality.py

bench-scrape: venv
	.venv/bin/python bench/extraction_quality.py
	bash scripts/with-services.sh .venv/bin/python bench/scrape_throughput.py

bench-fewshot: venv
	.venv/bin/python bench/fewshot.py

bench-entities: venv
	.venv/bin/python bench/entity_sentiment.py

bench-recipes: venv
	.venv/bin/python bench/recipe_eval.py $${MODELS:?set MODELS to registered model folders}

bench-store: venv
	.venv/bin/python -u bench/store.py --articles $${ARTICLES:-1000000} --days $${DAYS:-30}
