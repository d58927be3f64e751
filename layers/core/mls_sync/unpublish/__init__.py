"""Taking posts down: one unpublish job per post, exactly one effective delete."""
