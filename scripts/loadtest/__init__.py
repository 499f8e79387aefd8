"""The load-test runner behind `scripts/load`: orchestration (services, build, database, servers,
k6), sampling, data checks, and reports with charts. One module per scenario under scenarios/."""
