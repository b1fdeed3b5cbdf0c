"""Never losing a stroke: the journal written while painting and the recovery that reads it back."""
