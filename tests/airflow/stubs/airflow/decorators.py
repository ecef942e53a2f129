"""Immediate-mode @dag and @task (see __init__.py)."""

CALLS = []


class Result:
    """A task's return value (XCom); `>>` is a no-op because tasks already ran in order."""

    def __init__(self, value):
        self.value = value

    def __rshift__(self, other):
        return other


def _value(x):
    return x.value if isinstance(x, Result) else x


class Task:
    def __init__(self, fn, options):
        self.fn = fn
        self.options = options

    def __call__(self, *args, **kwargs):
        args = [_value(a) for a in args]
        kwargs = {k: _value(v) for k, v in kwargs.items()}
        value = self.fn(*args, **kwargs)
        CALLS.append({"task": self.fn.__name__, "kwargs": kwargs, "returned": value})
        return Result(value)

    def expand(self, **mapped):
        ((name, values),) = mapped.items()
        return Result([self(**{name: v}).value for v in values])


def task(fn=None, **options):
    if fn is None:
        return lambda f: Task(f, options)
    return Task(fn, options)


def dag(**options):
    def wrap(fn):
        def run():
            return fn()

        run.options = options
        return run

    return wrap
