"""The plugin contract as pytest suites: subclass one, set a few class attributes, run pytest.

mgf's own built-ins run these same suites (``tests/core/contract/test_contract_suites.py``), so a plugin that
passes them keeps the promises the core relies on.  Each suite is a plain class of ``test_*``
methods; name your subclass ``Test...`` so that pytest collects it.  Every suite takes:

``name``
    the registered name of the plugin class under test (``--sampler NAME`` and so on);
``plugin``
    the module (or object) holding its ``@mgf.hookimpl`` functions; it is registered for each
    test with :func:`registered`, whether or not it is also pip-installed.  ``None`` (the
    default) tests what is already registered: a built-in or an installed plugin.

and per kind:

* :class:`RepresentationContract`: ``config`` (keyword config, default ``{}``), ``sequences``
  (token sequences that must survive ``write`` then ``read`` unchanged; none: the suite derives
  them from random tokens, read back once), ``lossless`` (False: a round trip only has to give
  valid tokens, e.g. audio), ``bad_primer`` (text ``parse_primer`` must refuse, or None), and
  the method ``make_representation()`` to override when an instance needs more than its config
  (a learned codebook).
* :class:`BackendContract`: ``options`` (backend options), ``architectures`` (random bundles
  compared against the ``numpy`` reference), ``rtol``/``atol``; a backend with its own file
  format overrides ``model_files(tmp_path)`` and ``reference(path)`` (an independent
  :class:`mgf.Model`, or None to skip the comparison).
* :class:`SamplerContract`: ``options``, ``deterministic`` (True: the seed changes nothing and
  the first row of a batch is what a single run gives), ``representation`` and ``representation_config``
  of the random model that drives it, ``bad_options`` (dicts that must be a ``UsageError``
  besides the generic wrong types and out-of-bounds values).
* :class:`ConstraintContract`: ``options``, ``samplers`` (run under each), ``representation``,
  ``representation_config``, ``refuses`` (representations it must reject with a
  ``UsageError``), ``bad_options``, and the one method an author must write,
  ``assert_obeyed(pieces, representation)``, asserting that generated rows obey the constraint.

Example (a sampler plugin's ``tests/test_contract.py``)::

    import mgf.testing
    import mgf_lowest

    class TestLowest(mgf.testing.SamplerContract):
        name = "lowest"
        plugin = mgf_lowest
        options = {"floor": 2}
        deterministic = True

Other tests of the same plugin register it with the :func:`registered` context manager::

    @pytest.fixture(autouse=True)
    def lowest():
        with mgf.testing.registered(mgf_lowest):
            yield

Importing this module imports pytest (``import mgf`` does not), never TensorFlow or music21.
"""

from mgf.testing.backends import BackendContract
from mgf.testing.representations import RepresentationContract
from mgf.testing.sampling import ConstraintContract, SamplerContract
from mgf.testing.suite import bad_values, registered

__all__ = [
    "BackendContract",
    "ConstraintContract",
    "RepresentationContract",
    "SamplerContract",
    "bad_values",
    "registered",
]

for _name in __all__:  # documented, shown and pickled as mgf.testing.NAME, the name to import them by
    globals()[_name].__module__ = __name__
del _name
