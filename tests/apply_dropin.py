#!/usr/bin/env python3
"""One import name for Blindspot (issue #26): the mechanical part.

    python tests/apply_dropin.py /path/to/repo [--check] [--ruff PATH|--no-ruff] [--quiet]

The repository keeps its folders; setup.py maps them under one package, `blindspot`:

    components/  -> blindspot              (blindspot.error_analysis, blindspot.ErrorAnalysisReport)
    pipelines/   -> blindspot.pipelines
    review/      -> blindspot.review
    kubeflow/    -> blindspot.kubeflow

This script rewrites every reference to the old top-level names in the repository's text files
(tracked and untracked, not ignored): Python code (import statements), strings and comments in
Python (mock/patch targets, TFX dotted paths such as 'pipelines.taxi.model.run_fn', the artifact
TYPE_NAME 'components.ErrorAnalysisReport', code run with `python -c`), Markdown, the Makefile,
YAML, the notebook's code cells and the Dockerfile (`python -m kubeflow.runner` ->
`python -m blindspot.kubeflow.runner`). File paths (components/error_analysis/settings.py) stay
as they are: the folders do not move. It also sets ruff's known-first-party and adds setup.py
and review/ to the Dockerfile's build stage.

A dotted name is rewritten only when its second part is a real submodule or an exported name of
that folder (read from the repository itself), so `pipelines.md`, `review.ipynb` or a local
`components.append(...)` stay. A block of text that binds a bare name (`import review`, then
`review.Review(...)`) keeps its attribute uses; the import becomes `from blindspot import review`.
The {expressions} of an f-string are code and stay; its literal text is rewritten.

Idempotent: a second run changes nothing. Standard library only; Python >= 3.8. Prints what it
changed; with --check it changes nothing and exits 1 if anything would change. At the end it runs
`ruff check --fix --select I` and `ruff format` on the Python files it changed (import order and
line lengths change with the longer names) and `ruff format` on the Markdown files it changed
(their code blocks), with the repository's .venv/bin/ruff, else ruff on PATH (--no-ruff: skip).
Last, it lists anything it could not rewrite safely (exit 0 still).
"""

import argparse
import ast
import io
import json
import re
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

NEW_ROOT = 'blindspot'
# old top-level name (a folder of the repository) -> its name under the one package
PACKAGES = {
    'components': 'blindspot',
    'pipelines': 'blindspot.pipelines',
    'review': 'blindspot.review',
    'kubeflow': 'blindspot.kubeflow',
}
OLD = '|'.join(PACKAGES)
SKIP_FILES = {'apply_dropin.py'}
SKIP_SUFFIXES = {
    '.lock', '.csv', '.pbtxt', '.parquet', '.png', '.jpg', '.gz', '.zip', '.whl', '.sqlite',
    '.db', '.pyc', '.patch', '.diff',
}  # fmt: skip
TEXT_NAMES = {'Makefile', 'Dockerfile', 'run'}
TEXT_SUFFIXES = {
    '.py', '.md', '.toml', '.cfg', '.ini', '.yaml', '.yml', '.ipynb', '.sh', '.txt', '.rst',
}  # fmt: skip

_IDENT = r'[A-Za-z_]\w*'
_DOTTED = rf'{_IDENT}(?:\.{_IDENT})*'
_ITEM = rf'{_DOTTED}(?:\s+as\s+{_IDENT})?'


# --------------------------------------------------------------------------------------------
# What each old package exports: its submodules and the names its __init__ defines.


def known_names(repo: Path) -> Dict[str, Set[str]]:
    """old package -> names that may follow 'old.' (submodules, subpackages, exported names)."""
    known = {}
    for old in PACKAGES:
        folder = repo / old
        names: Set[str] = set()
        if folder.is_dir():
            for child in folder.iterdir():
                if child.name.startswith(('_', '.')):
                    continue
                if child.suffix == '.py':
                    names.add(child.stem)
                elif child.is_dir() and any(child.glob('*.py')):
                    names.add(child.name)
            init = folder / '__init__.py'
            if init.is_file():
                names |= _init_names(init.read_text())
        known[old] = {n for n in names if re.fullmatch(_IDENT, n) and not n.startswith('__')}
    return known


def _init_names(source: str) -> Set[str]:
    """Top-level definitions, imports, __all__ entries, string keys of top-level dicts (lazy
    export tables) and names a module __getattr__ compares with."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
            if node.name == '__getattr__':
                for sub in ast.walk(node):
                    if isinstance(sub, ast.Compare):
                        for c in [sub.left, *sub.comparators]:
                            if isinstance(c, ast.Constant) and isinstance(c.value, str):
                                names.add(c.value)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names.add((alias.asname or alias.name).split('.')[0])
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    names.add(t.id)
            value = node.value
            if isinstance(value, (ast.List, ast.Tuple, ast.Set)):
                names |= {
                    e.value
                    for e in value.elts
                    if isinstance(e, ast.Constant) and isinstance(e.value, str)
                }
            elif isinstance(value, ast.Dict):
                names |= {
                    k.value
                    for k in value.keys
                    if isinstance(k, ast.Constant) and isinstance(k.value, str)
                }
    return names


# --------------------------------------------------------------------------------------------
# Rewriting one block of text (a Markdown file, a Makefile, a Python string or comment).


def _from_import(match: 're.Match') -> str:
    old, rest = match.group('old'), match.group('rest') or ''
    return f'{match.group("pre")}{PACKAGES[old]}{rest}{match.group("post")}'


_FROM_RE = re.compile(
    rf'(?P<pre>(?<![\w.])from\s+)(?P<old>{OLD})(?P<rest>(?:\.{_IDENT})*)(?P<post>\s+import\b)'
)
_IMPORT_RE = re.compile(rf'(?<![\w.])import[ \t]+(?P<items>{_ITEM}(?:[ \t]*,[ \t]*{_ITEM})*)')
_FROM_BEFORE_RE = re.compile(rf'(?<![\w.])from\s+\.*{_DOTTED}\s+$|(?<![\w.])from\s+\.+\s*$')


def _binds_bare(text: str) -> Set[str]:
    """Old names a block binds to the package itself: `import review`, `import review as
    review`, `from blindspot import review` (after rewriting)."""
    bound = set()
    for m in _IMPORT_RE.finditer(text):
        line_start = text.rfind('\n', 0, m.start()) + 1
        if _FROM_BEFORE_RE.search(text[line_start : m.start()]):
            continue
        for item in m.group('items').split(','):
            parts = item.split()
            name = parts[0]
            alias = parts[2] if len(parts) == 3 else None
            if name in PACKAGES and (alias is None or alias == name):
                bound.add(name)
            new_name = next((o for o, n in PACKAGES.items() if n == name), None)
            if new_name and alias == new_name:
                bound.add(new_name)
    for m in re.finditer(
        rf'(?<![\w.])from[ \t]+{NEW_ROOT}[ \t]+import[ \t]+(?:\(([^)]*)\)|([^\n;#)]*))', text
    ):
        for item in (m.group(1) or m.group(2) or '').split(','):
            parts = item.split()
            if parts and parts[0] in PACKAGES and (len(parts) == 1 or parts[-1] == parts[0]):
                bound.add(parts[0])
    return bound


def _rewrite_imports(text: str, single_statement_form: bool) -> Tuple[str, Set[str]]:
    """`import old...` statements; returns the text and the old names whose unaliased dotted
    import now binds `blindspot` instead (their attribute uses must follow)."""
    rebinds: Set[str] = set()

    def item(raw: str, alone: bool) -> str:
        parts = raw.split()
        name, alias = parts[0], (parts[2] if len(parts) == 3 else None)
        head, _, rest = name.partition('.')
        if head not in PACKAGES:
            return raw
        new = PACKAGES[head] + ('.' + rest if rest else '')
        if rest:
            if alias is None:
                rebinds.add(head)
                return new
            return f'{new} as {alias}'
        if alias is None and not single_statement_form:
            rebinds.add(head)  # text (a `python -c` line): `import blindspot.pipelines`
            return new
        alias = alias or head
        if alone and single_statement_form and '.' in PACKAGES[head]:
            parent, _, leaf = PACKAGES[head].rpartition('.')
            return f'\0from {parent} import {leaf}' + ('' if alias == leaf else f' as {alias}')
        return f'{new} as {alias}'

    def repl(m: 're.Match') -> str:
        line_start = text.rfind('\n', 0, m.start()) + 1
        if _FROM_BEFORE_RE.search(text[line_start : m.start()]):
            return m.group(0)  # the names after `from X import`
        items = [i.strip() for i in m.group('items').split(',')]
        if not any(i.split('.')[0].split()[0] in PACKAGES for i in items):
            return m.group(0)
        new_items = [item(i, len(items) == 1) for i in items]
        if len(new_items) == 1 and new_items[0].startswith('\0'):
            return new_items[0][1:]
        return 'import ' + ', '.join(new_items)

    return _IMPORT_RE.sub(repl, text), rebinds


def _dotted_re(known: Dict[str, Set[str]]) -> re.Pattern:
    return re.compile(rf'(?<![\w./\-])(?P<old>{OLD})\.(?P<attr>{_IDENT})')


_MODULE_FLAG_RE = re.compile(r'-m(?:\s+|[\'"],\s*[\'"])$')


def rewrite_text(
    text: str, known: Dict[str, Set[str]], keep_bound: bool = True, code_like: bool = True
) -> str:
    """Every rule on one block of text. `keep_bound`: leave `old.attr` where the block binds
    the bare name `old` (after `import old`)."""
    text = _FROM_RE.sub(_from_import, text)
    text, _ = _rewrite_imports(text, single_statement_form=code_like)
    bound = _binds_bare(text) if keep_bound else set()
    dotted = _dotted_re(known)

    def repl(m: 're.Match') -> str:
        old, attr = m.group('old'), m.group('attr')
        if attr not in known[old]:
            return m.group(0)
        before = text[max(0, m.start() - 8) : m.start()]
        if old in bound and not _MODULE_FLAG_RE.search(before):
            return m.group(0)
        return f'{PACKAGES[old]}.{attr}'

    return dotted.sub(repl, text)


# --------------------------------------------------------------------------------------------
# Python files: code is rewritten through its import statements only; strings and comments as
# text blocks.


def _string_spans(source: str) -> Optional[List[Tuple[int, int, str]]]:
    """(start offset, end offset, 'string'|'comment') of every string and comment token; None
    when the file does not tokenize."""
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))

    def at(pos: Tuple[int, int]) -> int:
        return offsets[pos[0] - 1] + pos[1]

    spans = []
    fstring_start = None
    depth = 0
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            name = tokenize.tok_name[tok.type]
            if name == 'FSTRING_START':  # Python 3.12+
                if depth == 0:
                    fstring_start = at(tok.start)
                depth += 1
            elif name == 'FSTRING_END':
                depth -= 1
                if depth == 0:
                    spans.append((fstring_start, at(tok.end), 'string'))
            elif depth:
                continue
            elif tok.type == tokenize.STRING:
                spans.append((at(tok.start), at(tok.end), 'string'))
            elif tok.type == tokenize.COMMENT:
                spans.append((at(tok.start), at(tok.end), 'comment'))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None
    return spans


def _rewrite_fstring(token: str, known: Dict[str, Set[str]]) -> str:
    """An f-string: its literal parts as text, its {expressions} left alone (they are code,
    bound by the file's imports)."""
    out, literal, i, n = [], [], 0, len(token)
    while i < n:
        c = token[i]
        if c in '{}' and token[i : i + 2] in ('{{', '}}'):
            literal.append(token[i : i + 2])
            i += 2
        elif c == '{':
            out.append(rewrite_text(''.join(literal), known))
            literal = []
            depth, j = 0, i
            while j < n:
                if token[j] == '{':
                    depth += 1
                elif token[j] == '}':
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            out.append(token[i : j + 1])
            i = j + 1
        else:
            literal.append(c)
            i += 1
    out.append(rewrite_text(''.join(literal), known))
    return ''.join(out)


def rewrite_python(source: str, known: Dict[str, Set[str]]) -> Tuple[str, List[str]]:
    spans = _string_spans(source)
    if spans is None:
        return rewrite_text(source, known), ['does not tokenize: rewritten as plain text']
    # Code between the strings: import statements. Joined with placeholders so that a
    # statement split by a string token is never matched across it.
    pieces, kinds = [], []
    pos = 0
    for start, end, kind in spans:
        pieces.append(source[pos:start])
        kinds.append('code')
        pieces.append(source[start:end])
        kinds.append(kind)
        pos = end
    pieces.append(source[pos:])
    kinds.append('code')

    code = '\x01'.join(p for p, k in zip(pieces, kinds) if k == 'code')
    code = _FROM_RE.sub(_from_import, code)
    code, rebinds = _rewrite_imports(code, single_statement_form=True)
    bound_code = _binds_bare(code)
    notes = []
    if rebinds:
        # `import pipelines.x` (unaliased) now binds `blindspot`: its attribute uses follow.
        dotted = _dotted_re(known)

        def repl(m: 're.Match') -> str:
            old = m.group('old')
            if old in rebinds and old not in bound_code and m.group('attr') in known[old]:
                return f'{PACKAGES[old]}.{m.group("attr")}'
            return m.group(0)

        code = dotted.sub(repl, code)
        both = rebinds & bound_code
        if both:
            notes.append(f'binds {sorted(both)} both bare and dotted: check attribute uses')
    code_parts = iter(code.split('\x01'))
    out = []
    for piece, kind in zip(pieces, kinds):
        if kind == 'code':
            out.append(next(code_parts))
        elif kind == 'string' and 'f' in re.match(r'[A-Za-z]*', piece).group(0).lower():
            out.append(_rewrite_fstring(piece, known))
        else:
            out.append(rewrite_text(piece, known))
    result = ''.join(out)
    # Bare uses of an old name the file no longer binds.
    try:
        tree = ast.parse(result)
    except SyntaxError as e:
        notes.append(f'does not parse after rewriting: {e}')
        return result, notes
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split('.')[0] for a in node.names}
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            bound.add(node.name)
    unbound = sorted(
        {
            n.id
            for n in ast.walk(tree)
            if isinstance(n, ast.Name) and n.id in PACKAGES and n.id not in bound
        }
    )
    if unbound:
        notes.append(f'uses {unbound} without binding them: check by hand')
    return result, notes


# --------------------------------------------------------------------------------------------
# Special files.


def rewrite_notebook(source: str, known: Dict[str, Set[str]]) -> str:
    nb = json.loads(source)
    changed = False
    for cell in nb.get('cells', []):
        src = cell.get('source')
        text = ''.join(src) if isinstance(src, list) else (src or '')
        if cell.get('cell_type') == 'code':
            new, _ = rewrite_python(text, known)
        else:
            new = rewrite_text(text, known)
        if new != text:
            changed = True
            cell['source'] = new.splitlines(keepends=True) if isinstance(src, list) else new
    if not changed:
        return source
    indent = 1
    m = re.match(r'\{\n( +)"', source)
    if m:
        indent = len(m.group(1))
    out = json.dumps(nb, indent=indent, ensure_ascii=False)
    return out + ('\n' if source.endswith('\n') else '')


def rewrite_pyproject(source: str, known: Dict[str, Set[str]]) -> str:
    """ruff's isort: one first-party name instead of the four folders."""

    def first_party(m: 're.Match') -> str:
        items = re.findall(r'"([^"]+)"', m.group(2))
        new, seen = [], set()
        for item in items:
            name = NEW_ROOT if item in PACKAGES or item == NEW_ROOT else item
            if name not in seen:
                seen.add(name)
                new.append(name)
        return m.group(1) + '[' + ', '.join(f'"{n}"' for n in new) + ']'

    source = re.sub(r'(known-first-party\s*=\s*)\[([^\]]*)\]', first_party, source)
    return rewrite_text(source, known, code_like=False)


def rewrite_dockerfile(source: str, known: Dict[str, Set[str]]) -> str:
    """Dotted names (the import check, comments) and, in the build stage, setup.py (the
    package mapping) and review/ beside pyproject.toml and the other folders."""
    source = rewrite_text(source, known, code_like=False)
    lines = source.split('\n')
    anchor = next(
        (
            i
            for i, line in enumerate(lines)
            if re.match(r'COPY\s+pyproject\.toml\s+/src/?\s*$', line)
        ),
        None,
    )
    if anchor is not None:
        if not any(re.match(r'COPY\s+setup\.py\s+/src/', line) for line in lines):
            lines.insert(anchor + 1, 'COPY setup.py /src/')
        src_copies = [
            i for i, line in enumerate(lines) if re.match(r'COPY\s+\w+/\s+/src/\w+/', line)
        ]
        if src_copies and not any(
            re.match(r'COPY\s+review/\s+/src/review/', line) for line in lines
        ):
            lines.insert(src_copies[-1] + 1, 'COPY review/ /src/review/')
    return '\n'.join(lines)


# --------------------------------------------------------------------------------------------


def repo_files(repo: Path) -> List[Path]:
    try:
        out = subprocess.run(
            ['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
            cwd=repo,
            capture_output=True,
            check=True,
        ).stdout.decode()
        names = [n for n in out.split('\0') if n]
    except (OSError, subprocess.CalledProcessError):
        skip = {'.git', '.venv', 'node_modules', 'outputs', 'build', '__pycache__'}
        names = [
            str(p.relative_to(repo))
            for p in repo.rglob('*')
            if p.is_file() and not (set(p.relative_to(repo).parts) & skip)
        ]
    files = []
    for name in sorted(set(names)):
        path = repo / name
        if not path.is_file() or path.is_symlink() or path.name in SKIP_FILES:
            continue
        if path.suffix in SKIP_SUFFIXES:
            continue
        if (
            path.suffix in TEXT_SUFFIXES
            or path.name in TEXT_NAMES
            or path.name.startswith(('Dockerfile', 'Makefile'))
        ):
            files.append(path)
    return files


def rewrite_file(path: Path, known: Dict[str, Set[str]]) -> Tuple[str, str, List[str]]:
    source = path.read_text(encoding='utf-8')
    notes: List[str] = []
    if path.suffix == '.py':
        new, notes = rewrite_python(source, known)
    elif path.suffix == '.ipynb':
        new = rewrite_notebook(source, known)
    elif path.name == 'pyproject.toml':
        new = rewrite_pyproject(source, known)
    elif path.name.startswith('Dockerfile'):
        new = rewrite_dockerfile(source, known)
    else:
        new = rewrite_text(source, known, code_like=path.suffix in ('.md', '.rst', '.txt'))
    return source, new, notes


def find_ruff(repo: Path, given: Optional[str]) -> Optional[List[str]]:
    if given:
        return [given]
    local = repo / '.venv' / 'bin' / 'ruff'
    if local.is_file():
        return [str(local)]
    found = shutil.which('ruff')
    return [found] if found else None


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('repo', nargs='?', default='.', help='repository root (default: .)')
    p.add_argument('--check', action='store_true', help='change nothing; exit 1 if it would')
    p.add_argument('--ruff', help='ruff executable (default: REPO/.venv/bin/ruff, then PATH)')
    p.add_argument('--no-ruff', action='store_true', help='do not run ruff afterwards')
    p.add_argument('--quiet', action='store_true')
    args = p.parse_args(argv)
    repo = Path(args.repo).resolve()
    missing = [old for old in PACKAGES if not (repo / old / '__init__.py').is_file()]
    if missing:
        print(
            f'error: {repo} is not a Blindspot repository (no {missing[0]}/__init__.py)',
            file=sys.stderr,
        )
        return 2
    known = known_names(repo)
    changed, warnings = [], []
    for path in repo_files(repo):
        try:
            source, new, notes = rewrite_file(path, known)
        except UnicodeDecodeError:
            continue
        rel = path.relative_to(repo)
        warnings += [f'{rel}: {n}' for n in notes]
        if new != source:
            changed.append(path)
            if not args.check:
                path.write_text(new, encoding='utf-8')
    if not args.quiet or args.check:
        for path in changed:
            print(f'{"would rewrite" if args.check else "rewrote"} {path.relative_to(repo)}')
        print(f'{len(changed)} file(s) {"to change" if args.check else "changed"}')
    if args.check:
        return 1 if changed else 0
    py = [str(p) for p in changed if p.suffix == '.py']
    md = [str(p) for p in changed if p.suffix == '.md']  # ruff >= 0.15 formats their code blocks
    if (py or md) and not args.no_ruff:
        ruff = find_ruff(repo, args.ruff)
        if ruff is None:
            warnings.append('ruff not found: run `make format` (import order, line lengths)')
        else:
            steps = [(['check', '--fix', '--select', 'I', '--quiet'], py, True)]
            steps += [(['format', '--quiet'], py, True), (['format', '--quiet'], md, False)]
            for cmd, files, must in steps:
                if not files:
                    continue
                done = subprocess.run(
                    [*ruff, *cmd, *files], cwd=repo, capture_output=True, text=True
                )
                if done.returncode not in (0, 1) and must:
                    warnings.append(f'ruff {cmd[0]} failed: {done.stderr.strip()[:300]}')
    for w in warnings:
        print(f'note: {w}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
