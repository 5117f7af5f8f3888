"""The package's shape (issue #18): no import circles, short modules, no two modules with one file name.

Read from the source with ``ast``: nothing is imported, so this runs in well under a second, on any backend.

The import graph follows what Python executes. ``import a.b.c`` and ``from a.b.c import x`` run the
packages ``a`` and ``a.b`` (their ``__init__``), then ``a.b.c``, then ``a.b.c.x`` if that is a module.
Imports inside functions count too: a circle that only closes at call time is still a circle.
A package that contains the importing module is left out: Python imported it first, so importing it
again runs nothing. That is what makes a package ``__init__`` that imports its submodules no circle
with a submodule that does ``from imagegen.pkg import X``: the edge goes to the submodule the
``__init__`` took ``X`` from (or to ``imagegen.pkg.X`` if that is a module), and there is none for a
name the ``__init__`` defines itself. From outside the package the same line is an edge to
``imagegen.pkg``, whose ``__init__`` really runs, and through it to whatever that ``__init__`` imports.
"""

import ast
import collections
import pathlib

PACKAGE = "imagegen"
ROOT = pathlib.Path(__file__).resolve().parents[1] / "src" / PACKAGE
MAX_LINES = 300
SHARED_NAMES = ("__init__.py", "__main__.py")  # every package has them


def module_files(root=ROOT, package=PACKAGE):
    """{dotted module name: path} of every .py file under ``root`` (a package ``__init__`` names the package)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(tree):
    """(module or None, [(name, alias)], level) of every import statement, at module level or inside functions."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], 0
        elif isinstance(node, ast.ImportFrom):
            yield node.module, [(alias.name, alias.asname) for alias in node.names], node.level


def _absolute(module, level, importer, is_package):
    """The absolute name of a (possibly relative) imported module."""
    if not level:
        return module
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _ancestors(name):
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def _reexports(files, package):
    """{name: module} for the names a package's ``__init__`` takes from another module."""
    tree = ast.parse(files[package].read_text(encoding="utf-8"))
    found = {}
    for module, names, level in _imports(tree):
        if names:
            source = _absolute(module, level, package, is_package=True)
            for name, alias in names:
                submodule = f"{source}.{name}"
                found[alias or name] = submodule if submodule in files else source
    return found


def import_graph(files=None, package=PACKAGE):
    """{module: set of modules of ``package`` whose code importing it runs}; see the module docstring."""
    files = module_files() if files is None else files
    graph = {name: set() for name in files}
    for importer, path in files.items():
        is_package = path.name == "__init__.py"
        own = _ancestors(importer) | ({importer} if is_package else set())
        for module, names, level in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            target = _absolute(module, level, importer, is_package)
            if target != package and not target.startswith(package + "."):
                continue
            runs = [m for m in sorted(_ancestors(target) | {target}) if m in files]
            for name, _ in names:
                submodule = f"{target}.{name}"
                if submodule in files:
                    runs.append(submodule)
                elif target in own:  # a name from a package this module is inside of: where was it defined?
                    runs.append(_reexports(files, target).get(name, target))
            graph[importer] |= {m for m in runs if m in files and m not in own and m != importer}
    return graph


def find_cycles(graph):
    """One shortest circle [a, b, ..., a] through each strongly connected group of ``graph`` ({node: successors})."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def connect(node):  # Tarjan's algorithm; the graph has about a hundred nodes
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph.get(node, ()):
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_shortest_circle(graph, group) for group in groups]


def _shortest_circle(graph, group):
    """The shortest path from the group's first member back to itself, inside the group."""
    start = min(group)
    previous, queue = {}, collections.deque([start])
    while queue:
        node = queue.popleft()
        for successor in sorted(graph[node] & group):
            if successor == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [start, *reversed(path[:-1]), start] if node != start else [start, start]
            if successor not in previous:
                previous[successor] = node
                queue.append(successor)
    raise AssertionError(f"no circle in {group}")


def test_no_import_circles():
    circles = find_cycles(import_graph())
    assert not circles, "import circles (each: a shortest circle through one group of modules that import each other):\n" + \
        "\n".join("  " + " -> ".join(circle) for circle in circles)


def test_modules_are_at_most_300_lines():
    long = {str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
            for path in module_files().values()}
    long = {name: lines for name, lines in long.items() if lines > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: " + ", ".join(f"{name} ({lines})" for name, lines in sorted(long.items()))


def test_no_two_modules_share_a_file_name():
    by_name = collections.defaultdict(list)
    for path in module_files().values():
        if path.name not in SHARED_NAMES:
            by_name[path.name].append(str(path.relative_to(ROOT)))
    shared = {name: paths for name, paths in by_name.items() if len(paths) > 1}
    assert not shared, "file names used twice: " + "; ".join(" and ".join(paths) for paths in sorted(shared.values()))


def test_find_cycles_finds_circles_and_only_them():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}, "f": {"d"}}
    assert sorted(find_cycles(graph)) == [["a", "b", "c", "a"], ["e", "e"]]
    assert find_cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []  # a diamond is no circle
    assert find_cycles({"x": {"y"}, "y": {"x", "z"}, "z": {"x"}}) == [["x", "y", "x"]]  # the shortest one


def test_import_graph_reads_package_imports(tmp_path):
    """Function-level and relative imports count; a sibling imported through its own package is no circle."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    sources = {
        "__init__.py": "",
        "a.py": "def f():\n    from pkg import b\n",  # a function-level import
        "b.py": "from .sub import Thing\n",  # a relative import of a re-exported name
        "sub/__init__.py": "from pkg.sub.c import Thing\nfrom pkg.sub.d import helper\n",
        "sub/c.py": "from pkg.sub import helper\nimport pkg.a\n",  # a sibling through the package: d, not sub
        "sub/d.py": "import os\n\ndef helper():\n    pass\n",
    }
    for name, text in sources.items():
        (package / name).write_text(text)
    graph = import_graph(module_files(package, "pkg"), "pkg")
    assert graph == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.sub"},
                     "pkg.sub": {"pkg.sub.c", "pkg.sub.d"}, "pkg.sub.c": {"pkg.sub.d", "pkg.a"}, "pkg.sub.d": set()}
    assert find_cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub", "pkg.sub.c", "pkg.a"]]
