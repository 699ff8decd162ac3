"""Machine-checked proofs: the Coq development of ``proofs/theories`` and its runner.

Every registered theorem of the toolkit is proved in Coq for every size (number of content
keys, virtual positions, dimensions, heads, layers), or its catalogue entry says what is left
out and why (:mod:`proofs.catalogue`).  This package imports no other project package; it needs
``coqc`` (Debian: ``apt-get install -y coq libcoq-coquelicot``).

    report = prove()                 # compile, Print Assumptions, per theorem proved / failed
    print(report.table())
    coq_statement("relative_attention")
    run_negative_controls(report.build)   # the false variants coqc must reject
"""

from proofs.assumptions import ALLOWED_AXIOMS, exported_theorems, standard_axioms
from proofs.catalogue import ENTRIES, REGISTERED_IDS, CoqEntry, coq_statement, get_entry
from proofs.controls import CONTROLS, run_negative_controls
from proofs.coq import INSTALL_COMMAND, compile_development, find_coqc
from proofs.errors import CoqNotFound, ProofsError
from proofs.runner import ProveReport, prove

__all__ = [
    "ALLOWED_AXIOMS",
    "CONTROLS",
    "ENTRIES",
    "INSTALL_COMMAND",
    "REGISTERED_IDS",
    "CoqEntry",
    "CoqNotFound",
    "ProofsError",
    "ProveReport",
    "compile_development",
    "coq_statement",
    "exported_theorems",
    "find_coqc",
    "get_entry",
    "prove",
    "run_negative_controls",
    "standard_axioms",
]
