"""Online EWC (Schwarz et al. 2018, "Progress & compress", ICML; Huszár 2018, "Note on the quadratic penalties in
elastic weight consolidation", PNAS 115): one penalty at the latest θ with the running Fisher γ·Ω̃ + Ω_t. With two
tasks it is EWC itself (one past task: every carry gives Ω_A at θ_A), so it runs in the sequence and the scenarios
only."""

from cllab.methods import FISHER_SETTINGS, GAMMA, Method

METHOD = Method("ewc_online", "online EWC", "#bcbd22", omega="omega_fisher", settings="fisher",
                settings_schema=FISHER_SETTINGS, experiments=("sequence", "scenarios"), carry="online",
                options={"gamma": GAMMA}, order=70)
