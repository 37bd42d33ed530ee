"""The research-use notice every surface that shows a prediction carries."""

NOTICE = ("Research use only: this estimate comes from a model trained on synthetic data; it is "
          "not validated for clinical use.")
