"""The RecModel API and everything derived from a spec alone, as pure functions: the typed spec,
names and labels, the child objects and Deployments a reconcile applies, and status assembly."""
