"""A small stand-in for the supernet's extract/weight_regions contract: nested basic-block ResNets on 8x8 digits.

``extract(config)`` builds our ResNet for (blocks per stage, width per stage); its weight
regions are prefix boxes of the largest config's tensors, as a width/depth-slicing supernet's are.
"""

from skipswitch.models.resnet import BasicBlock, ResNet


class StandinSupernet:
    largest_config = ((2, 2, 2), (16, 32, 64))

    def extract(self, config):
        blocks, widths = config
        return ResNet(BasicBlock, list(blocks), list(widths), num_classes=10, in_channels=1, input_size=8,
                      stem="cifar", name="standin")

    def weight_regions(self, config):
        model = self.extract(config)
        return {name: tuple((0, int(n)) for n in t.shape) for name, t in model.state_dict().items()
                if not name.endswith("num_batches_tracked")}


CONFIGS = [((1, 1, 1), (8, 16, 32)), ((1, 2, 1), (12, 24, 48)), ((2, 2, 2), (16, 32, 64))]
