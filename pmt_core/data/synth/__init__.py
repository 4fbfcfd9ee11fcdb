"""Synthetic stand-in for SOL-PMT with known ground truth (method.md section 6).

Each technique is produced by its physical mechanism on a harmonic carrier whose
timbre comes from one of 30 named instruments in the 11 SOL families. The data are
built so that the class is told by the modulation *mechanism*, not by its rate
alone, and never by a nuisance cue.

Mechanisms (table :data:`TECHNIQUE_SPECS`, one modulator function per technique)
--------------------------------------------------------------------------------
- vibrato: periodic frequency modulation, 10-100 cents peak deviation, skewed
  (non-sinusoidal) cycles, depth ramping in, a little coupled AM (FM through the
  body resonances);
- trill: alternation between the written note and the note a semitone or a tone
  above, portamento of 8-20 ms between notes and a small amplitude dip at each note
  change; on plucked instruments each note change is a hammer-on or pull-off that
  restarts the string's decay;
- tremolo: fast re-articulation of one note (bow strokes, repeated tonguing or
  plucks), each stroke a sharp attack then a decay (a sawtooth-like envelope) with
  an attack noise burst; on plucked instruments every stroke is a pluck with the
  string's own decay;
- flatterzunge: flutter-tongued wind note, irregular amplitude modulation with
  strongly jittered rate, depth and pulse shape; the breath noise follows the
  flutter;
- bisbigliando: one pitch alternated between two sources (two harp strings, two
  fingerings on winds, two strings in unison on bowed strings), detuned by a few
  cents, with their own level and timbre; each note re-articulated (plucked decays
  on plucked instruments).

Rates carry information per example
-----------------------------------
The mean rate of each example is drawn log-uniform over two octaves
(:data:`RATE_RANGE_HZ`; stratified within each class, so that a small class covers
its range evenly), twice the one-octave window (+-0.5 octave) that a
localisation claim scores, and centred on the physical band of
:data:`pmt_core.techniques.MODULATION_BAND_HZ` (which stays fixed, a priori, and is
*not* the generator's range). The ranges overlap (vibrato / trill / bisbigliando /
tremolo share 5.5-11 Hz; tremolo and flatterzunge 14-22 Hz): a map that always
peaks at one lambda2 per class hits about half of each class within +-0.5 octave
(:func:`pmt_core.data.shortcuts.class_constant_hit_rate`). The rate drifts within
a note (a log-linear accelerando or ritardando of up to
:attr:`TechniqueSpec.drift_max_oct`), and the cycle durations are jittered.

Definition of ``modulation_rate_hz`` (cycles per second): the realised mean rate
over the technique's part of the note, ``cycles / seconds`` from the technique's
start (``onset_s``, or ``onset_s + transition_s``) to the note's end. One cycle is
one period of what the signal repeats: one vibrato period; one trill alternation
A+B (notes per second = 2 x rate); one tremolo stroke; one flutter pulse; one
bisbigliando alternation A+B (the two sources differ in level and timbre, so the
envelope repeats once per A+B). The jittered cycle durations are rescaled so that
exactly ``rate x seconds`` cycles fit: the recorded mean is the realised one.
``modulation_rate_min_hz`` / ``_max_hz`` are the extremes of the jitter-free rate
curve (within about 1 % of the realised one, the rescaling's factor), and
``modulation_drift_oct`` its signed course, ``log2(end / start)``.

Units of ``modulation_depth``: vibrato peak deviation in cents; trill interval in
cents (100 or 200); tremolo and flatterzunge mean envelope dip as a fraction of the
peak amplitude (0-1); bisbigliando detuning between the two sources in cents.

Distractors in every clip (independent of the class)
----------------------------------------------------
A *brightness* modulation: the partials above ``DISTRACTOR_SPLIT_HARMONIC`` x f0
(between the 3rd and 4th harmonic) rise and fall together in amplitude, at a rate
log-uniform in :data:`DISTRACTOR_RATE_HZ` (2-60 Hz, all classes alike) and a depth
in the techniques' range (:data:`DISTRACTOR_DEPTH`, 0.4-0.9 of the upper partials'
amplitude against the tremolo's 0.5-0.95 of the whole note), present over the whole
note, twins included: a timbral pulsing such as a rotating loudspeaker, a pulsing
bow pressure or a player moving against a directional microphone. It is as strong
in the second-order coefficients of the upper carriers as a technique, so the input
and its energy see it, while the class does not depend on it; it is of a kind that
no technique is (a whole-note AM is a tremolo, an FM a vibrato: a class-independent
AM or FM at the techniques' depths and rates would make a vibrato with that AM the
same signal as a tremolo with that FM, so the class could no longer be told from the
clip). A claim can thus ask whether relevance follows the class's modulation rather
than the distractor's, and ``model.ignores_distractor`` whether the model does.
Also in every clip: a slow level drift (a crescendo or diminuendo of up to 6 dB over
the note).

Nuisance parameters, drawn from one distribution for every class
----------------------------------------------------------------
Family (uniform among the families that can play the technique, then the
instrument uniform within the family), f0 (log-uniform over the instrument's
range), dynamics, mute, onset, note duration, breath or bow noise relative to the
harmonic part (``noise_db``; not an instrument property, since instruments are not
spread alike over the classes), a recording noise floor through the whole clip
(``floor_db``), extra spectral tilt (``tilt_db_per_oct``), the free decay time of
plucked strings (``decay_s``, for every class played on a plucked instrument), a
unison doubling voice (``doubled``, with its own detuning, level and pitch wander),
slow intonation drift (``pitch_wander_cents``), level drift, distractor. The
technique may shape the noise in *time* (attack bursts, turbulence that follows
the flutter, finger noise at each pluck) but never its long-term level, which is
``noise_db`` for every clip.

What differs by class because the technique is defined by it
------------------------------------------------------------
- trill alternates two pitches a semitone or a tone apart (the only class whose
  pitch steps); vibrato sweeps the pitch continuously (its harmonics smear in a
  long-term spectrum: the modulation itself, not a nuisance);
- tremolo re-articulates one note, so attacks (and their noise bursts) recur;
- bisbigliando alternates two sources, so it is the one class with two sources
  taking turns (the second source is as likely brighter as darker: its tilt
  differs by +-0.5-3 dB/octave with a random sign);
- flatterzunge is a wind technique: impossible on bowed and plucked strings; the
  vibrato is not played on clarinets, horns or the harp. Family is therefore a weak
  cue; drawing the family (not the instrument) uniformly keeps it at its minimum
  (a Bayes balanced accuracy of 11/45 = 0.24 from family alone, chance 0.20);
- on plucked instruments the re-articulating techniques (tremolo, bisbigliando,
  trill by hammer-on / pull-off) restart the string's decay at every attack, so
  their notes decay between re-attacks but not over the whole clip, while a
  vibrato note (and every ablated twin) decays freely from its one pluck;
- every modulation leaves its trace in a fine-resolution long-term spectrum: FM
  smears the harmonics (vibrato), a trill doubles the lines a step apart, the two
  detuned sources of a bisbigliando split them, sharp re-attacks and flutter
  spread energy between them. Spectral flatness and slope read together with f0
  and centroid therefore tell the classes apart above chance (a linear guard
  reached balanced accuracy 0.40-0.43 at ci scale, seeds 0-2, each descriptor
  alone <= 0.30) while the same guard on the ablated twins, whose nuisance is the
  data's own, stays at chance (0.19-0.24): what it finds is the modulation.

Ablated twins (:func:`ablated_twin`)
------------------------------------
A twin keeps every nuisance parameter and the seed of its source row, so it draws
the same harmonic phases, noise, pitch wander, distractor, doubling and level; the
modulation is off: vibrato: no pitch modulation (and no coupled AM); trill: the
written (lower) note sustained; tremolo: one sustained stroke (one bow stroke, one
breath, one pluck left to decay); flatterzunge: the ordinario note, breath noise
unmodulated; bisbigliando: the first source sustained. Twins carry no class
information beyond the family's.

Transitions (off by default)
----------------------------
``synthetic_manifest(..., transition_fraction=f)`` starts the technique part-way
through the note for a fraction ``f`` of the examples: an ordinario segment (the
twin's signal) for ``transition_s`` seconds after the onset, then the technique,
cross-faded in over 0.1 s. ``transition_s`` is NaN when the technique starts with
the note. The default ``f = 0`` keeps every clip stationary.

Modules
-------
- :mod:`~pmt_core.data.synth.params`: the sample format and the distributions
  every class shares (dynamics, rate ranges, distractor, nuisance ranges);
- :mod:`~pmt_core.data.synth.instruments`: the 30 instruments' timbres and what
  each can play;
- :mod:`~pmt_core.data.synth.modulators`: one modulator per technique, its table
  :data:`TECHNIQUE_SPECS`, and the cycle grid of a drifting, jittered rate;
- :mod:`~pmt_core.data.synth.render`: :func:`synthesize`, the audio of one
  manifest row (carriers, noise, distractor, level);
- :mod:`~pmt_core.data.synth.manifest`: :func:`synthetic_manifest` (the data
  set's parameters, one row per example) and the ablated twins.

The names below are the generator's front door, re-exported for callers that
take the data set as a whole (:mod:`pmt_core.run`, :mod:`pmt_core.data.rates`,
the README's examples); the tables live in their modules.
"""

from pmt_core.data.synth.manifest import ablated_twin, ablated_twins, synthetic_manifest
from pmt_core.data.synth.modulators import RATE_DESCRIPTOR, TECHNIQUE_SPECS
from pmt_core.data.synth.render import synthesize

__all__ = ["RATE_DESCRIPTOR", "TECHNIQUE_SPECS", "ablated_twin", "ablated_twins",
           "synthesize", "synthetic_manifest"]
