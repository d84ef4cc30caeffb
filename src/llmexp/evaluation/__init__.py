"""Evaluation: metrics, log-likelihood scoring, benchmark tasks and their data, few-shot prompts, perplexity,
generation and code tasks, the lm-eval adapter. Kept free of imports: the lm-eval startup hook (lm_eval_plugin) is
imported from here in every Python process of an environment that has llmexp installed."""
