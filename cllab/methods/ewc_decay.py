"""Online EWC with γ < 1 (Schwarz et al. 2018, "Progress & compress", ICML): the old Fishers decay by γ per task, so
old tasks are protected less than in online EWC with γ = 1. Sequence only (with two tasks it is EWC)."""

from cllab.methods import FISHER_SETTINGS, GAMMA, SEQUENCE_ONLY, Method

METHOD = Method("ewc_decay", "online EWC, decayed", "#7b4173", omega="omega_fisher", settings="fisher",
                settings_schema=FISHER_SETTINGS, experiments=SEQUENCE_ONLY, carry="online", options={"gamma": GAMMA},
                order=80)
