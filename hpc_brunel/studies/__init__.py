"""The studies layer: strong and weak scaling (scaling, scaling_plots), the
resource planner (plan) and the g x eta phase-diagram sweep (sweep, sweep_table,
sweep_theory, sweep_plots). Each runs many `hpc_brunel run`s and reads their
results."""
