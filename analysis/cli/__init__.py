"""The command line of ``python -m analysis`` (its entry point stays ``analysis/__main__.py``).

- :mod:`analysis.cli.commands`: the one command list, :data:`~analysis.cli.commands.COMMANDS`,
  derived from :data:`analysis.registry.ANALYSES`, then ``compare``, ``report`` and ``datasets``.
- :mod:`analysis.cli.regimes`: the ``regimes`` command's printout and JSON.
- :mod:`analysis.cli.render`: terminal rendering (rich), escaping of file strings, the JSON envelope.

Nothing is imported here, so the registry can import :mod:`analysis.cli.regimes` without loading the CLI.
"""
