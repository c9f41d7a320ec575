"""Seeded simulator of a party-education platform: orgs, members, courses, behaviour, truth.

Real member data is confidential, so everything in the library is tested and demonstrated on
data drawn from this simulator. It plants structure that recommenders can learn and that
evaluations can check against:

* an org tree of party committees, general branches and branches with industries and
  districts; members belong to a branch, and the branch's industry shapes their occupations;
* courses in the four channels (:data:`recommend.schema.CHANNELS`) with Chinese titles, tags
  and descriptions drawn from per-channel topic vocabularies, durations from 3-minute
  micro-lessons to 90-minute lectures, official courses by lecturers and UGC uploaded by
  branches over time;
* a true preference (:class:`Truth`): course quality with a power-law popularity, segment
  tastes (occupation x channel, occupation x topic, duration preference by occupation, age
  and commuting), members' skills, a local appeal of branch uploads, and 16-dimensional
  member and course latent factors (members of a branch share part of theirs);
* behaviour generated from that preference: members choose courses with probability
  proportional to ``exp(utility)`` (times the share of the period the course was available),
  watch a fraction that grows with utility, and emit ``view -> progress -> complete`` funnels
  plus likes, favorites, shares, comments and check-ins; branches assign monthly compulsory
  主题党日 material that most of their members complete; members search, see a ranked list of
  text matches and click with a position bias.

The ``small``, ``sample`` and ``city`` presets plant strong segment structure (segment
popularity far ahead of global popularity) for tests that check it; the ``calibrated``
preset matches real enrolment data in popularity concentration, member activity and a
segment lift of a few percent (docs/simulator.md; ``SynthConfig.segment_strength``,
``compulsory_share``, ``taste_scale`` and ``popularity_spread`` are the settings).

Everything is a pure function of the configuration and the seed: the same seed gives
byte-identical files from :meth:`Platform.write` (with the same library versions on the same
platform). All work is vectorised with numpy, so the ``"city"`` preset (100k members, 10k
courses, about 5M events) runs in well under a minute.

Modules: ``config`` (``SynthConfig``, ``PRESETS``), ``vocabulary`` (topics, terms, places),
``timing`` (the period, times of day), ``sampling`` (vectorised draws), ``orgs``,
``members``, ``catalogue`` (lecturers and courses), ``truth`` (``Truth``), ``behaviour``
(study sessions and their events), ``searches``, ``ids``, ``tables`` (Arrow schemas),
``platform`` (``Platform``, writing and ``read_platform``), ``simulate`` (``synthesize``)
and ``calibration`` (statistics compared with real data).
"""

from __future__ import annotations

from recommend.data.synthetic.config import PRESETS, SynthConfig
from recommend.data.synthetic.platform import Platform, read_platform
from recommend.data.synthetic.simulate import synthesize
from recommend.data.synthetic.truth import Truth
from recommend.data.synthetic.vocabulary import TOPICS

__all__ = [
    "PRESETS",
    "TOPICS",
    "Platform",
    "SynthConfig",
    "Truth",
    "read_platform",
    "synthesize",
]
