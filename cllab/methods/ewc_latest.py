"""EWC keeping only the latest task's Fisher at the latest θ (the old Ω's dropped): the carrying that forgets the
most, beside EWC's sum and online EWC's running Ω. Sequence only (with two tasks it is EWC)."""

from cllab.methods import FISHER_SETTINGS, SEQUENCE_ONLY, Method

METHOD = Method("ewc_latest", "EWC, latest F only", "#e377c2", omega="omega_fisher", settings="fisher",
                settings_schema=FISHER_SETTINGS, experiments=SEQUENCE_ONLY, carry="latest", order=90)
