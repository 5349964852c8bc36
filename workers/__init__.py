"""The execution side: RQ workers and the job functions they run (see the execution issue)."""
