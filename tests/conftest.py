pytest_plugins = ["tests.support.fixtures", "tests.support.redis_server"]
