"""The ``prefix-theory`` command line: the one package that imports every other.

Subcommands live in one module each (:mod:`cli.verify`, :mod:`cli.derive`, :mod:`cli.construct`,
:mod:`cli.experiment`, :mod:`cli.model`); :mod:`cli.main` builds the parser, sets up JAX for
verification, loads plug-ins and maps outcomes to exit codes.
"""
