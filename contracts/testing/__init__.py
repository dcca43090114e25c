"""Contract suites plugin authors run against their own components."""
