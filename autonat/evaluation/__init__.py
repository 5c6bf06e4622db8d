"""FID / IS / KID / precision-recall: image sets, feature extractors, reference statistics, metrics."""
