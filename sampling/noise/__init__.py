"""What sampling starts from: the initial noise types (:mod:`.initial`), FreeInit (:mod:`.freeinit`), the ComfyUI
wrapper running both (:mod:`.start`), and the beta schedules the motion modules were trained with (:mod:`.betas`)."""
