"""Stop words for BM25: words that match nearly every chat turn and only add noise."""

from __future__ import annotations

EN_STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    s t d ll m re ve don didn doesn isn wasn""".split()
)

# Single characters dropped from kana and Hangul runs (which stay characters + bigrams).
CJK_STOP_CHARS = frozenset("的了是我你吗呢吧啊么")

# Chinese function words, pronouns and conversational filler, as jieba segments them. Content
# words stay, single-character ones too (花, 舞). Measured on MADial-Bench zh (issue 14): jieba
# words *with* these are worse than character bigrams, because every turn shares 我/你/的/就是/
# 那个/真的; without them, search-mode words are the best BM25 tokens tried.
ZH_STOPWORDS = frozenset(
    """
    的 地 得 了 着 过 是 在 有 和 与 及 或 跟 同 把 被 给 让 对 向 从 往
    于 为 以 而 且 则 就 才 都 也
    还 又 再 很 太 更 最 挺 蛮 真 好 吗 呢 吧 啊 呀 哦 噢 喔
    嗯 哈 嘿 哇 诶 欸 唉 哎 么 嘛 啦 呗 咯 哟
    我 你 您 他 她 它 我们 你们 他们 她们 它们 咱 咱们 自己 大家 别人 人家
    这 那 这个 那个 这些 那些 这样 那样 这么 那么 这里 那里 这儿 那儿 这种 那种 这次 那次
    什么 怎么 怎样 怎么样 为什么 哪 哪里 哪儿 哪个 谁 多少 几 如何
    不 没 没有 不是 不会 不要 别 会 能 可以 要 想 应该 可能 得到 觉得 感觉 知道 认为 说 讲 看看
    一 一个 一下 一些 一点 一点儿 一样 一起 一直 一定 一次 有点 有些 有点儿
    因为 所以 如果 虽然 但是 但 可是 不过 然后 而且 并且 或者 还是 就是 只是 其实 反正 好像 似乎
    已经 正在 刚 刚刚 还有 以及 比如 例如 然而 于是 接着 之后 以后 之前 时候 的话 来说 起来 下来
    嗯嗯 哈哈 哈哈哈 呵呵 嘻嘻 嘿嘿 哇哦 哇塞 天哪 天啊 哎呀 哎哟 对啊 对呀 是啊 是的 好的 好吧
    好呀 好啊 真的 确实 当然 非常 特别 超级 十分 比较 实在
    """.split()
)
