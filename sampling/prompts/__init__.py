"""Per-frame schedules: keyframed numbers and prompts (:mod:`.frames`) and prompt travel's conditioning (:mod:`.schedule`)."""
